"""An MCP ``CallToolResult`` (wire JSON) as a tether ``ToolOutput``.

Text stays text and images in a format Claude reads become ``ImageBlock``s. What Claude cannot take
in a tool result (audio, binary resources, other image types) becomes a line of text saying what was
left out, so the model knows something was there. ``isError`` becomes ``is_error``.
"""

from __future__ import annotations

import json

from tether.api.types import ImageBlock, Json, TextBlock
from tether.tools.base import ToolOutput

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def to_output(result: Json) -> ToolOutput:
    blocks = [block for item in result.get("content") or [] for block in _blocks(item)]
    if not blocks and result.get("structuredContent") is not None:
        blocks = [TextBlock(json.dumps(result["structuredContent"], ensure_ascii=False))]
    is_error = bool(result.get("isError"))
    if not blocks:
        return ToolOutput("", is_error)
    if len(blocks) == 1 and isinstance(blocks[0], TextBlock):
        return ToolOutput(blocks[0].text, is_error)
    return ToolOutput(blocks, is_error)


def _blocks(item: Json) -> list[TextBlock | ImageBlock]:
    kind = item.get("type")
    if kind == "text":
        return [TextBlock(item.get("text", ""))]
    if kind == "image":
        return [_image(item.get("data", ""), item.get("mimeType", ""), "image")]
    if kind == "audio":
        return [TextBlock(f"[audio ({item.get('mimeType', 'unknown type')}) left out: Claude cannot hear audio]")]
    if kind == "resource":
        return [_resource(item.get("resource") or {})]
    if kind == "resource_link":
        return [TextBlock(f"[resource link: {item.get('name', '')} {item.get('uri', '')}]")]
    return [TextBlock(json.dumps(item, ensure_ascii=False))]


def _image(data: str, media_type: str, what: str) -> TextBlock | ImageBlock:
    if media_type in IMAGE_TYPES:
        return ImageBlock(source={"type": "base64", "media_type": media_type, "data": data})
    return TextBlock(f"[{what} of type {media_type or 'unknown'} left out: Claude reads PNG, JPEG, GIF and WebP]")


def _resource(resource: Json) -> TextBlock | ImageBlock:
    uri = resource.get("uri", "")
    if "text" in resource:
        return TextBlock(f"[resource {uri}]\n{resource['text']}")
    media_type = resource.get("mimeType", "")
    if media_type in IMAGE_TYPES:
        return _image(resource.get("blob", ""), media_type, f"resource {uri}")
    return TextBlock(f"[binary resource {uri} ({media_type or 'unknown type'}) left out]")
