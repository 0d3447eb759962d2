# Shared by all.tcl and every *.test: where the in-tree build is, the packages, and
# helpers to run a port manager, child processes and unique rings.
package require tcltest 2.5
namespace import ::tcltest::*

namespace eval ::dftest {
    variable here [file dirname [file normalize [info script]]]
    variable top [file dirname [file dirname $here]]
    # Set by make check-tcl; the defaults let a developer run all.tcl by hand.
    variable pkgdir [expr {[info exists ::env(DAQFLOW_TCL_DIR)] ? $::env(DAQFLOW_TCL_DIR) : "$top/build/tcl"}]
    variable libdir [expr {[info exists ::env(DAQFLOW_LIB_DIR)] ? $::env(DAQFLOW_LIB_DIR) : "$top/target/release"}]
    variable bindir [expr {[info exists ::env(DAQFLOW_TEST_BIN)] ? $::env(DAQFLOW_TEST_BIN) : "$top/build/tcl/tests"}]
    variable daemon [expr {[info exists ::env(DAQPORTMGR)] ? $::env(DAQPORTMGR) : "$top/target/release/daqportmgr"}]
    variable tclsh [info nameofexecutable]
    # Daemons started by this process and not yet stopped: pid -> startDaemon's dict.
    variable running {}
}

# First on auto_path: for equal versions, package unknown lets earlier entries win, and
# an installed copy (/usr/local/lib/tcltk/daqflow) must not shadow the build under test.
set auto_path [linsert $auto_path 0 $::dftest::pkgdir]

# Puts the build under test first on a child interpreter's auto_path (see above).
proc usePkgdir {interp} {
    $interp eval [list set ::auto_path [linsert [$interp eval {set ::auto_path}] 0 $::dftest::pkgdir]]
}

# A ring name no other test run uses: removed by cleanupRings.
proc ringName {tag} {
    return "tcltest-[pid]-$tag"
}

proc cleanupRings {} {
    if {[namespace which ::ringbuffer] eq ""} {
        return
    }
    foreach r [ringbuffer list] {
        if {[string match "tcltest-[pid]-*" $r]} {
            catch {ringbuffer remove $r}
        }
    }
}

# Polls script until it returns true or ms pass; returns its last value.
proc waitFor {ms script} {
    set deadline [expr {[clock milliseconds] + $ms}]
    while {1} {
        set v [uplevel 1 $script]
        if {$v || [clock milliseconds] > $deadline} {
            return $v
        }
        after 20
    }
}

# n consecutive ports nobody listens on (checked by binding them), for a daemon's pool.
# Below the kernel's ephemeral range (32768 up): a port there can become the local port
# of any outgoing connection in between, and a server then cannot listen on it.
proc freePortRange {n} {
    for {set try 0} {$try < 50} {incr try} {
        set base [expr {20000 + int(rand() * 12000)}]
        set ok 1
        for {set p $base} {$p < $base + $n} {incr p} {
            if {[catch {close [socket -server {apply {args {}}} $p]}]} {
                set ok 0
                break
            }
        }
        if {$ok} {
            return [list $base [expr {$base + $n - 1}]]
        }
    }
    error "no $n free consecutive ports"
}

# Starts the real daqportmgr on a port the system picks, with a temporary state
# directory. Returns a dict: chan, pid, port, dir, portfile.
proc startDaemon {args} {
    set dir [file join [tcltest::temporaryDirectory] daqportmgr-[pid]-[incr ::dftest::daemons]]
    file delete -force $dir
    file mkdir $dir
    file attributes $dir -permissions 0755
    set cmd [list $::dftest::daemon -listen 0 -portfile $dir/listen.port \
                 -pidfile $dir/daqportmgr.pid -log $dir/portmanager.log {*}$args]
    set chan [open |[list {*}$cmd 2>@1] r]
    set portfile $dir/listen.port
    if {![waitFor 5000 {expr {[file exists $portfile] && [file size $portfile] > 0}}]} {
        catch {exec kill [pid $chan]}
        catch {close $chan}
        error "daqportmgr did not start"
    }
    set f [open $portfile]
    set port [string trim [read $f]]
    close $f
    set d [dict create chan $chan pid [pid $chan] port $port dir $dir portfile $portfile]
    dict set ::dftest::running [pid $chan] $d
    return $d
}

proc stopDaemon {d} {
    catch {exec kill [dict get $d pid]}
    catch {close [dict get $d chan]}
    file delete -force [dict get $d dir]
    dict unset ::dftest::running [dict get $d pid]
}

# Ends a test file: no daemon or ring of ours outlives it, even after a failed cleanup.
proc finishTests {} {
    dict for {pid d} $::dftest::running {
        stopDaemon $d
    }
    cleanupRings
    cleanupTests
}

# The daemon all.tcl started for every file (its port file is in the environment, so
# the packages' defaults find it, as they would the system's daemon).
proc testPort {} {
    return $::env(DAQFLOW_TEST_PM_PORT)
}

# Runs script in a child tclsh that has the in-tree packages on its auto_path; returns
# a channel open for reading and writing its standard input and output. The script is
# written to file name (in the temporary directory) so [info script] has a name.
proc childTclsh {name script} {
    set path [makeFile "set auto_path \[linsert \$auto_path 0 [list $::dftest::pkgdir]\]\n$script" $name]
    set chan [open |[list $::dftest::tclsh $path 2>@1] r+]
    fconfigure $chan -buffering line
    return $chan
}

# Reads one line from a child with a timeout, so a broken child fails the test rather
# than hanging it.
proc readLine {chan {ms 10000}} {
    fconfigure $chan -blocking 0
    set deadline [expr {[clock milliseconds] + $ms}]
    while {[gets $chan line] < 0} {
        if {[eof $chan] || [clock milliseconds] > $deadline} {
            fconfigure $chan -blocking 1
            return "<no line: [expr {[eof $chan] ? {eof} : {timeout}}]>"
        }
        after 10
    }
    fconfigure $chan -blocking 1
    return $line
}

# The errorCode of script's error, or "no error".
proc errorCodeOf {script} {
    if {[catch {uplevel 1 $script} msg opts]} {
        return [dict get $opts -errorcode]
    }
    return "no error"
}
