"""Postyard: self-hosted transactional email appliance."""
