"""Running as a service: systemd notifications and service files."""
