"""Cross-cutting pieces every context uses: errors, security, audit, operations."""
