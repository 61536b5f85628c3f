"""TauCloud: the file tree (database metadata, blob contents), WebDAV, REST and sharing."""
