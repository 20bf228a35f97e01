"""The durable record of all AI work: write-ahead log, database, recovery, queries."""
