//! FAT12/16/32 volumes (the EFI system partition), read through the `fatfs` crate (stub).
