//! NTFS volumes (stub).
