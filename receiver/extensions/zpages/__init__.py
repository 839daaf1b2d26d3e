"""The ``zpages`` extension: live HTML pages of what the agent sees (see :mod:`.extension`)."""

from receiver.extensions.zpages.config import ZPagesExtensionConfig
from receiver.extensions.zpages.extension import ZPagesExtension

__all__ = ["ZPagesExtension", "ZPagesExtensionConfig"]
