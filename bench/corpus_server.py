"""An MCP server that serves labelled corpus rows, for the end-to-end eval (bench/eval_e2e.py).

    python bench/corpus_server.py [CORPUS_DIR]      # stdio; default ../shared/corpus

`fetch_document(id)` returns a row's text as a tool result (where indirect injection, PII
and secrets arrive from a server); `lookup(value)` takes any argument (where argument
injection arrives); the prompt `ask(question)` takes a user's text as a prompt argument.
Rows are read from the corpus at start-up and never logged.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # run as a script: bench/ is first on the path, not the root

from mcp.server.mcpserver import MCPServer  # noqa: E402

from bench.corpus import load  # noqa: E402

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def load_rows(corpus: Path) -> dict[str, str]:
    return {row["id"]: row["text"] for path in sorted(corpus.glob("*.jsonl*")) for row in load(path)}


def build(corpus: Path) -> MCPServer:
    rows = load_rows(corpus)
    server = MCPServer("corpus", instructions="Serves stored documents by id.")

    @server.tool(structured_output=False)
    def fetch_document(id: str) -> str:
        """Fetch a stored document by its id and return its text."""
        return rows[id]

    @server.tool(structured_output=False)
    def lookup(value: str) -> str:
        """Look up records matching a value and say how many were found."""
        return f"found {len(value) % 3} records"

    @server.prompt()
    def ask(question: str) -> str:
        """Ask the assistant a question."""
        return question

    return server


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CORPUS).run("stdio")
