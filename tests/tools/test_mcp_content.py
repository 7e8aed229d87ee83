"""MCP tool results (wire JSON) as tether tool outputs: no server, no mcp package needed."""

from __future__ import annotations

from tether.api.types import ImageBlock, TextBlock
from tether.tools.mcp_content import to_output


def test_one_text_is_a_string_and_is_error_carries_over():
    output = to_output({"content": [{"type": "text", "text": "boom"}], "isError": True})
    assert (output.content, output.is_error) == ("boom", True)


def test_mixed_content_keeps_its_order():
    output = to_output({"content": [
        {"type": "text", "text": "a chart:"},
        {"type": "image", "data": "AAAA", "mimeType": "image/jpeg"},
        {"type": "text", "text": "done"},
    ]})
    assert output.content == [
        TextBlock("a chart:"),
        ImageBlock(source={"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}),
        TextBlock("done"),
    ]
    assert not output.is_error


def test_what_claude_cannot_read_is_named_not_dropped():
    output = to_output({"content": [
        {"type": "image", "data": "AAAA", "mimeType": "image/tiff"},
        {"type": "audio", "data": "AAAA", "mimeType": "audio/wav"},
        {"type": "resource", "resource": {"uri": "file:///a.bin", "blob": "AAAA", "mimeType": "application/zip"}},
    ]})
    assert output.content == [
        TextBlock("[image of type image/tiff left out: Claude reads PNG, JPEG, GIF and WebP]"),
        TextBlock("[audio (audio/wav) left out: Claude cannot hear audio]"),
        TextBlock("[binary resource file:///a.bin (application/zip) left out]"),
    ]


def test_resources_and_links():
    output = to_output({"content": [
        {"type": "resource", "resource": {"uri": "file:///notes.txt", "text": "hello"}},
        {"type": "resource", "resource": {"uri": "file:///p.png", "blob": "AAAA", "mimeType": "image/png"}},
        {"type": "resource_link", "name": "report", "uri": "https://example.com/r"},
    ]})
    assert output.content == [
        TextBlock("[resource file:///notes.txt]\nhello"),
        ImageBlock(source={"type": "base64", "media_type": "image/png", "data": "AAAA"}),
        TextBlock("[resource link: report https://example.com/r]"),
    ]


def test_structured_content_alone_becomes_json_text_and_nothing_is_empty():
    assert to_output({"content": [], "structuredContent": {"n": 1}}).content == '{"n": 1}'
    assert to_output({"content": []}).content == ""
