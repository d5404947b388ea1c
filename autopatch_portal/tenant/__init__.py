"""Everything that talks to Microsoft: the Graph client, the tenant connection, directory reads and writes,
and the simulated tenant that answers in Entra's and Graph's wire format when Microsoft's cloud is out of reach.

No models live here; `devices` and `accounts` build on it, never the other way round.
"""
