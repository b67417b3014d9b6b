"""Location shards: which shard holds a contact, the combined read views, and the overall invariants."""
