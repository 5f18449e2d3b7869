"""A local multi-machine cluster on Docker alone: Docker-in-Docker nodes on a dedicated network,
an etcd cluster of three members and a Shipmate daemon on every node (``shipmate cluster``)."""
