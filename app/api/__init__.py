"""HTTP plumbing shared by every domain router."""
