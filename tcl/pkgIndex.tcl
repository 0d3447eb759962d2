# daqflow's Tcl packages. Two shared objects because Tcl 8.6's load accepts only one
# init prefix per file; both are thin stubs over libdaqflow.so.1.
package ifneeded ring 1.1 \
    [list load [file join $dir libdaqflowring[info sharedlibextension]] Ring]
package ifneeded portAllocator 1.0 \
    [list load [file join $dir libdaqflowportallocator[info sharedlibextension]] Portallocator]
