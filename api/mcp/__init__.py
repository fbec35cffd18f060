"""The MCP server (Model Context Protocol) over the same answers: ``api.mcp.server``."""
