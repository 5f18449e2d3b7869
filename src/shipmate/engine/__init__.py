"""The container engine: an interface (:mod:`.base`), the docker-py adapter (:mod:`.docker`),
and base-image bootstrap (:mod:`.images`)."""
