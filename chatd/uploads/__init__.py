"""Photos in chats (docs/protocol.md, "Photos"): what a file is (``detect``), its re-encoding
without metadata (``images``), where that work runs (``pool``), where files are kept
(``storage``), the multipart body read within its limit (``form``), and the HTTP endpoints
(``api``)."""
