"""Outbound HTTP to addresses callers chose: public ones only, size- and time-capped."""
