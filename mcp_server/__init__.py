"""The gateway: MCP tools, REST and health built from the registry. Holds no job state."""
