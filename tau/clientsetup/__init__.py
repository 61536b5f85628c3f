"""Clients that set themselves up: Thunderbird autoconfig, Microsoft Autodiscover, Apple profiles,
the MTA-STS policy, all derived from the configuration (issue 17, item 3)."""
