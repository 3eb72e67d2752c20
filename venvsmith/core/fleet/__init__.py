"""What replicas of a fleet share through Redis (``serve --cache redis://...``): a cache tier, lease-based locks
with fencing tokens, and the single-flight across replicas built on them."""
