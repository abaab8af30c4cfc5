"""Code that every Guichet service uses: event envelope and schemas, event store and
outbox, configuration, logging, database access and migrations."""
