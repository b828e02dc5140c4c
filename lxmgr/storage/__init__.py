"""Instance root filesystems: drivers (dir, overlay), their mount plans and the mounting."""
