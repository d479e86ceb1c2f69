"""Where the tester meets the DUT: the wire ends (TAP, packet socket) and the capture of
every frame both ways. Below the testbench, the targets and the evidence writer."""
