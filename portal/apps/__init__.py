"""Applications context: containers and compose projects deployed to hosts, with revisions."""
