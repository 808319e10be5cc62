"""`courier demo` writes only into its own folder and deletes only what it made there (issue 10:
it used to delete ./demo.log wherever it ran)."""

from __future__ import annotations

from pathlib import Path

import pytest

from courier.demo.run import MARKER, DemoOptions, FolderNotOurs, prepare_folder


def test_the_demo_makes_its_folder_and_deletes_only_its_own_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "demo.log"  # the user's own file beside the demo's folder
    mine.write_text("mine")
    opts = DemoOptions()  # ./demo
    prepare_folder(opts)
    assert (tmp_path / "demo" / MARKER).exists()
    opts.db.write_text("old run")
    opts.log.write_text("old log")
    (tmp_path / "demo" / "notes.txt").write_text("the user's")
    prepare_folder(opts)  # a fresh run
    assert not opts.db.exists() and not opts.log.exists()
    assert (tmp_path / "demo" / "notes.txt").read_text() == "the user's"
    assert mine.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "demo.log"]


def test_a_folder_the_demo_did_not_make_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "demo.sqlite3").write_text("someone's database")
    with pytest.raises(FolderNotOurs):
        prepare_folder(DemoOptions(folder=folder))
    assert (folder / "demo.sqlite3").read_text() == "someone's database"
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_folder(DemoOptions(folder=empty))  # an empty folder is fine
    assert (empty / MARKER).exists()
