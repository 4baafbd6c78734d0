"""Write the shipped demo corpus and questions: ``python scripts/make_demo_corpus.py``."""

from pathlib import Path

from s3_agents.worlds import write_demo_files

if __name__ == "__main__":
    target = Path(__file__).resolve().parent.parent / "s3_agents" / "data"
    for path in write_demo_files(target):
        print(f"wrote {path}")
