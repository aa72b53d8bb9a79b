"""What glpibot writes: GLPI follow-ups and solutions, Markdown artifacts, memory records."""
