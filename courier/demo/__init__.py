"""`courier demo`: a realistic office day with simulated couriers on an accelerated clock."""
