"""The platform as one long-lived process: the REPL (`shell`), headless
`serve`, and `--attach` to a served platform over a local socket.

Modules: `session` (one REPL session: cf commands, `status`, `send`, `py`),
`consoles` (terminal and pipe input/output), `attach` (the socket server and
client), `serve`, `status` (what status prints), `literals` (reading a typed
protocol message without eval), `pyconsole` (the asyncio Python prompt).
"""
