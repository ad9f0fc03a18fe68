"""What crosses between actors and between the platform and its users:
message types, state enums, named errors, the manifest schema. Types only."""
