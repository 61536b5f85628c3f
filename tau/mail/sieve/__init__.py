"""Sieve (RFC 5228) at local delivery, vacation (RFC 5230), ManageSieve (RFC 5804) and REST filters."""
