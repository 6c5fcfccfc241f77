"""The committed gallery (tools/gallery.py): copy a render, check a fresh render against it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gallery", ROOT / "tools" / "gallery.py")
gallery = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gallery)


def _render(folder: Path, accuracy: str = "61.2", png: bytes = b"\x89PNG one") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text("<html>table1 fig03</html>\n")
    (folder / "table1.md").write_text(f"| method | n=2 |\n|---|---|\n| TA | {accuracy} |\n")
    (folder / "table1.csv").write_text(f"method,n2\nTA,{accuracy}\n")
    (folder / "manifest.json").write_text('{"artifacts": 2}\n')
    (folder / "fig03_accuracy_vs_n.png").write_bytes(png)
    return folder


def test_copy_then_check_agree(tmp_path, capsys):
    src = _render(tmp_path / "demo_quick")
    dest = tmp_path / "demo"
    assert gallery.main(["copy", str(src), str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == sorted([*(p.name for p in src.iterdir()), "gallery.json"])
    assert gallery.main(["check", str(src), str(dest)]) == 0
    assert "passed" in capsys.readouterr().out
    assert gallery.main(["copy", str(src), str(dest)]) == 0  # its own gallery: replaced


def test_a_changed_number_fails_and_is_named(tmp_path, capsys):
    dest = tmp_path / "demo"
    gallery.main(["copy", str(_render(tmp_path / "a")), str(dest)])
    capsys.readouterr()
    assert gallery.main(["check", str(_render(tmp_path / "b", accuracy="61.3")), str(dest)]) == 1
    out = capsys.readouterr().out
    assert "table1.md: differs" in out and "61.3" in out and "FAILED" in out


def test_figure_bytes_alone_pass_unless_strict(tmp_path, capsys):
    dest = tmp_path / "demo"
    gallery.main(["copy", str(_render(tmp_path / "a")), str(dest)])
    fresh = _render(tmp_path / "b", png=b"\x89PNG two")
    assert gallery.main(["check", str(fresh), str(dest)]) == 0
    assert "rasterisation" in capsys.readouterr().out
    assert gallery.main(["check", str(fresh), str(dest), "--strict"]) == 1


def test_missing_or_extra_files_fail(tmp_path):
    dest = tmp_path / "demo"
    gallery.main(["copy", str(_render(tmp_path / "a")), str(dest)])
    fresh = _render(tmp_path / "b")
    (fresh / "table2.md").write_text("new\n")
    assert gallery.main(["check", str(fresh), str(dest)]) == 1
    (fresh / "table2.md").unlink()
    (fresh / "table1.csv").unlink()
    assert gallery.main(["check", str(fresh), str(dest)]) == 1


def test_bad_inputs_exit_2_and_change_nothing(tmp_path):
    src = _render(tmp_path / "a")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert gallery.main(["copy", str(src), str(mine)]) == 2
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert gallery.main(["check", str(src), str(tmp_path / "nothing")]) == 2
    (src / "fig04.pdf").write_bytes(b"x" * (gallery.MAX_FILE_BYTES + 1))
    assert gallery.main(["copy", str(src), str(tmp_path / "new")]) == 2
    assert not (tmp_path / "new").exists()


def test_make_and_ci_wire_the_gallery():
    makefile = (ROOT / "Makefile").read_text()
    assert "\ngallery: demo-quick" in makefile and "\ncheck-gallery: demo-quick" in makefile
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make demo-quick") < ci.index("make check-gallery")
