"""The platform as one long-lived process: the REPL (`shell`), headless
`serve`, and `--attach` to a served platform over a local socket.

Modules: `session` (one REPL session: cf commands, `status`, `send`, `py`),
`consoles` (terminal and pipe input/output), `attach` (the socket server and
the REPL's client), `serve`, `daemon` (`up`, `down`: serve in the background,
and the state it leaves in the data dir), `client` (one cf command, carried to
the serving process), `status` (what status prints), `literals` (reading a typed
protocol message without eval), `pyconsole` (the asyncio Python prompt).
"""
