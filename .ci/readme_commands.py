"""Print the README's two commands (the ```bash blocks under "## Two commands"), one per line, for .ci/run."""
from __future__ import annotations

import re
import sys
from pathlib import Path


def readme_commands(text: str) -> list[str]:
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


if __name__ == "__main__":
    commands = readme_commands(Path(sys.argv[1]).read_text(encoding="utf-8"))
    if len(commands) != 2 or any("\n" in command for command in commands):
        sys.exit(f"{sys.argv[1]}: expected two one-line commands under '## Two commands', found {commands}")
    print("\n".join(commands))
