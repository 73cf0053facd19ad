"""The edge package runs a bundle without importing TensorFlow when a LiteRT runtime is installed."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from .conftest import REPO
from .helpers.tiny_bundles import build_attributes_bundle


def test_edge_never_imports_tensorflow(tmp_path):
    build_attributes_bundle(tmp_path / "models" / "attributes")
    script = textwrap.dedent(f"""
        import sys
        from edge.config import Settings
        from edge.pipeline import Pipeline
        from edge import cli, overlay, sinks, sources, track
        import edge.commands.run, edge.commands.check, edge.commands.bench, edge.commands.info
        s = Settings()
        s.source.realtime = False
        s.models.dir = {str(tmp_path / "models")!r}
        s.models.bundles = ["attributes"]
        p = Pipeline(s)
        assert list(p.models) == ["attributes"], p.model_errors
        p.open()
        for _ in range(3):
            p.step()
        p.drain()                            # the looks handed to the model worker are back
        p.close()
        assert p.times.model_runs >= 1, "the model never ran"
        print("runtime", next(iter(p.models.values())).runtime.name)
        bad = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith(("tensorflow.", "keras")))
        print("tf modules", bad)
        assert not bad, bad
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "runtime ai_edge_litert" in done.stdout
    assert "tf modules []" in done.stdout
