# Runs every *.test here against the in-tree build, with a daqportmgr of its own, and
# exits non-zero if any test fails (a lone test file would exit 0).
source [file join [file dirname [file normalize [info script]]] support.tcl]

configure -testdir $::dftest::here -tmpdir [file join $::dftest::top build tcl tcltest-tmp] {*}$argv
file mkdir [configure -tmpdir]

# The pool must be bindable: the seed's example 1 listens on the port it gets.
lassign [freePortRange 200] lo hi
set daemon [startDaemon -ports $lo-$hi]
set env(DAQPORTMGR_PORTFILE) [dict get $daemon portfile]
set env(DAQFLOW_TEST_PM_PORT) [dict get $daemon port]
set env(DAQFLOW_TEST_POOL) "$lo $hi"
puts "daqportmgr [dict get $daemon port] (pool $lo-$hi), packages from $::dftest::pkgdir"

set failed [catch {runAllTests} result]
stopDaemon $daemon
if {$failed} {
    puts stderr $result
    exit 1
}
exit $result
