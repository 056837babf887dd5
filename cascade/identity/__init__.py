"""Identity: Keystone-compatible Fernet keys and tokens, the identity data and its read
model, the role rule, and replication of all of it from a master to replicas in a star.

The names below are the package's public interface for other products (``cascade_sim``
serves its Keystone with them); Cascade's own packages may import the modules themselves.
"""

from cascade.identity.follower import Follower, Following, Master
from cascade.identity.passwords import generated_password
from cascade.identity.policy import authorize
from cascade.identity.sealing import write_private
from cascade.identity.services import Endpoint, IdentityServices, initialize_identity
from cascade.identity.tokens import AuthContext, TokenError

__all__ = [
    "AuthContext",
    "Endpoint",
    "Follower",
    "Following",
    "IdentityServices",
    "Master",
    "TokenError",
    "authorize",
    "generated_password",
    "initialize_identity",
    "write_private",
]
