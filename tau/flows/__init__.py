"""Cross-service flows (issue 9): mail → call, chat, event, cloud; each one a small module."""
