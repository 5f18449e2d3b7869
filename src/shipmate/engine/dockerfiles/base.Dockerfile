# shipmate/base:SUITE: the debootstrap'd root filesystem (imported as ROOTFS) plus defaults.
ARG ROOTFS
FROM ${ROOTFS}
ENV LANG=C.UTF-8
CMD ["/bin/bash"]
