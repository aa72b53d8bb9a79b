"""glpibot: turn GLPI helpdesk tickets into safe, audited automation."""

__version__ = "0.1.0"
