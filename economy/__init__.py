"""The agent economy: config, seeding, run folders, world, market loop, CLI, metrics."""
