"""The state database: encrypted tokens, the journal, the run lock."""
