"""The text editor on real files: commands, encodings, line endings, atomic writes, undo, versions."""

from __future__ import annotations

import os
import stat

import pytest

from tether.tools.base import ToolContext, ToolError
from tether.tools.editor import TextEditor
from tether.tools.sandbox import PathOutsideWorkspace, Workspace
from tether.tools.textfile import BinaryFile

CTX = ToolContext("run", "toolu")


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path)


@pytest.fixture
def editor(ws):
    return TextEditor(ws)


async def do(editor, **input):
    return (await editor.call(input, CTX)).content


def test_spec_per_version(ws):
    assert TextEditor(ws).spec().to_wire() == {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
    assert TextEditor(ws, max_characters=500).spec().to_wire() == {
        "type": "text_editor_20250728", "name": "str_replace_based_edit_tool", "max_characters": 500}
    old = TextEditor(ws, version="text_editor_20250124", max_characters=500)
    assert old.spec().to_wire() == {"type": "text_editor_20250124", "name": "str_replace_editor"}
    assert "undo_edit" in old.input_schema["properties"]["command"]["enum"]
    assert "undo_edit" not in TextEditor(ws).input_schema["properties"]["command"]["enum"]
    with pytest.raises(ValueError, match="known"):
        TextEditor(ws, version="text_editor_1999")


async def test_view_file_like_cat_n(editor, tmp_path):
    (tmp_path / "f.txt").write_text("one\ntwo\nthree\n")
    assert await do(editor, command="view", path="f.txt") == (
        "Here's the result of running `cat -n` on f.txt:\n     1\tone\n     2\ttwo\n     3\tthree")
    assert (await do(editor, command="view", path="f.txt", view_range=[2, -1])).endswith("     2\ttwo\n     3\tthree")
    assert (await do(editor, command="view", path="f.txt", view_range=[1, 1])).endswith("     1\tone")
    with pytest.raises(ToolError, match="out of range"):
        await do(editor, command="view", path="f.txt", view_range=[9, 10])
    with pytest.raises(ToolError, match="before its start"):
        await do(editor, command="view", path="f.txt", view_range=[3, 2])


async def test_view_directory_two_levels_without_hidden(editor, tmp_path):
    for path in ("a/b/c/deep.txt", "a/x.txt", "top.txt", ".hidden/h.txt", "a/.secret"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    listing = await do(editor, command="view", path=str(tmp_path))
    lines = listing.splitlines()[1:]
    assert lines == [str(tmp_path), f"{tmp_path}/a/", f"{tmp_path}/a/b/", f"{tmp_path}/a/x.txt", f"{tmp_path}/top.txt"]


async def test_max_characters_truncates_view(ws, tmp_path):
    (tmp_path / "big.txt").write_text("x" * 1000)
    out = await do(TextEditor(ws, max_characters=100), command="view", path="big.txt")
    assert out.startswith("Here's the result") and "truncated at 100 of" in out
    assert len(out) < 200


async def test_create_makes_parents_and_overwrites(editor, tmp_path):
    assert "created" in await do(editor, command="create", path="new/dir/f.py", file_text="print(1)\n")
    assert (tmp_path / "new/dir/f.py").read_text() == "print(1)\n"
    assert "overwritten" in await do(editor, command="create", path="new/dir/f.py", file_text="print(2)\n")
    assert (tmp_path / "new/dir/f.py").read_text() == "print(2)\n"


async def test_str_replace_once(editor, tmp_path):
    (tmp_path / "f.py").write_text("a = 1\nb = 2\nc = 3\n")
    out = await do(editor, command="str_replace", path="f.py", old_str="b = 2", new_str="b = 20\nb2 = 21")
    assert (tmp_path / "f.py").read_text() == "a = 1\nb = 20\nb2 = 21\nc = 3\n"
    assert "     2\tb = 20\n     3\tb2 = 21" in out
    await do(editor, command="str_replace", path="f.py", old_str="b2 = 21\n")  # new_str omitted: delete
    assert (tmp_path / "f.py").read_text() == "a = 1\nb = 20\nc = 3\n"


async def test_str_replace_no_match_and_several_matches(editor, tmp_path):
    (tmp_path / "f.py").write_text("x = 1\ny = 2\nx = 1\n\nx = 1\n")
    with pytest.raises(ToolError, match="did not appear verbatim"):
        await do(editor, command="str_replace", path="f.py", old_str="z = 1", new_str="")
    with pytest.raises(ToolError, match=r"occurs 3 times in f\.py, at lines 1, 3, 5"):
        await do(editor, command="str_replace", path="f.py", old_str="x = 1", new_str="x = 2")
    assert (tmp_path / "f.py").read_text() == "x = 1\ny = 2\nx = 1\n\nx = 1\n"


async def test_insert(editor, tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("one\ntwo\n")
    await do(editor, command="insert", path="f.txt", insert_line=0, new_str="zero")
    await do(editor, command="insert", path="f.txt", insert_line=2, new_str="one and a half\n")
    await do(editor, command="insert", path="f.txt", insert_line=4, insert_text="three")
    assert f.read_text() == "zero\none\none and a half\ntwo\nthree\n"
    f.write_text("no newline")
    await do(editor, command="insert", path="f.txt", insert_line=1, new_str="end")
    assert f.read_text() == "no newline\nend"
    with pytest.raises(ToolError, match=r"out of range: f\.txt has 2 lines"):
        await do(editor, command="insert", path="f.txt", insert_line=5, new_str="x")


@pytest.mark.parametrize("encoding, bom", [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"),
                                           ("utf-16-be", b"\xfe\xff"), ("latin-1", b"")])
async def test_encoding_and_bom_are_kept(editor, tmp_path, encoding, bom):
    f = tmp_path / "f.txt"
    f.write_bytes(bom + "café = 1\nthé = 2\n".encode(encoding))
    await do(editor, command="str_replace", path="f.txt", old_str="thé = 2", new_str="thé = 3")
    assert f.read_bytes() == bom + "café = 1\nthé = 3\n".encode(encoding)
    assert "café" in await do(editor, command="view", path="f.txt")


async def test_crlf_is_kept(editor, tmp_path):
    f = tmp_path / "win.txt"
    f.write_bytes(b"a\r\nb\r\nc\r\n")
    await do(editor, command="str_replace", path="win.txt", old_str="b\nc", new_str="B\nC")
    await do(editor, command="insert", path="win.txt", insert_line=1, new_str="a2")
    assert f.read_bytes() == b"a\r\na2\r\nB\r\nC\r\n"


async def test_latin1_cannot_take_characters_it_lacks(editor, tmp_path):
    f = tmp_path / "f.txt"
    f.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ToolError, match="latin-1 text, which cannot hold '✓'"):
        await do(editor, command="str_replace", path="f.txt", old_str="café", new_str="café ✓")
    assert f.read_bytes() == "café\n".encode("latin-1")


async def test_binary_files_are_refused(editor, tmp_path):
    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "noise.bin").write_bytes(bytes(range(1, 32)) * 10)
    (tmp_path / "high.bin").write_bytes(bytes(range(128, 256)) + bytes(range(1, 32)) * 3)
    for name in ("img.png", "noise.bin", "high.bin"):
        with pytest.raises(BinaryFile, match="binary file"):
            await do(editor, command="view", path=name)


async def test_writes_are_atomic_and_keep_the_mode(editor, tmp_path):
    f = tmp_path / "run.sh"
    f.write_text("echo hi\n")
    f.chmod(0o750)
    inode = f.stat().st_ino
    await do(editor, command="str_replace", path="run.sh", old_str="hi", new_str="there")
    assert stat.S_IMODE(f.stat().st_mode) == 0o750
    assert f.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["run.sh"]  # no temporary file left behind


async def test_a_new_file_gets_the_umasks_mode(editor, tmp_path):
    before = os.umask(0o027)
    try:
        await do(editor, command="create", path="new.txt", file_text="x\n")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["new.txt"]


async def test_undo_edit_in_the_versions_that_have_it(ws, tmp_path):
    editor = TextEditor(ws, version="text_editor_20250124")
    assert editor.name == "str_replace_editor"
    f = tmp_path / "f.txt"
    f.write_text("v1\n")
    await do(editor, command="str_replace", path="f.txt", old_str="v1", new_str="v2")
    await do(editor, command="insert", path="f.txt", insert_line=1, new_str="more")
    assert "undone" in await do(editor, command="undo_edit", path="f.txt")
    assert f.read_text() == "v2\n"
    await do(editor, command="undo_edit", path="f.txt")
    assert f.read_text() == "v1\n"
    with pytest.raises(ToolError, match="No edit to undo"):
        await do(editor, command="undo_edit", path="f.txt")
    await do(editor, command="create", path="brand_new.txt", file_text="x")
    await do(editor, command="undo_edit", path="brand_new.txt")
    assert not (tmp_path / "brand_new.txt").exists()
    with pytest.raises(ToolError, match="unknown command 'undo_edit'"):
        await do(TextEditor(ws), command="undo_edit", path="f.txt")


async def test_paths_go_through_the_workspace(editor, tmp_path):
    outside = tmp_path.parent / f"outside-{os.getpid()}.txt"
    with pytest.raises(PathOutsideWorkspace):
        await do(editor, command="create", path=str(outside), file_text="x")
    with pytest.raises(PathOutsideWorkspace):
        await do(editor, command="view", path="../")
    assert not outside.exists()


async def test_missing_file_and_directory_errors(editor, tmp_path):
    with pytest.raises(ToolError, match="does not exist"):
        await do(editor, command="view", path="nope.txt")
    (tmp_path / "d").mkdir()
    with pytest.raises(ToolError, match="is a directory"):
        await do(editor, command="create", path="d", file_text="x")
