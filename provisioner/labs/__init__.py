"""Real hosts to test on, on this machine: two labs and what they share.

    container/   bare Debian hosts as systemd-nspawn containers (`provision lab`): seconds per host
    vm/          Vagrant VMs under libvirt (`provision vm`): minutes, but a real kernel and boot
    common.py    processes by PID, the lock, links, atomic writes, inventory files
    aptproxy.py  an nginx caching proxy, the hosts' only way out (to Debian's mirror)
    load.py      wrk against a lab host's API in short slices (the soak test, the served benchmark)

Both keep every address inside network namespaces they create and stop only processes they
started, by the PID they recorded.
"""
