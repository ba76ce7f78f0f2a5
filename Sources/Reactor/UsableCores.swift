import CLinuxShims
#if canImport(Glibc)
import Glibc
#endif

/// The cores this process may run on: its CPU affinity (`taskset`, a container's cpuset), or
/// every online core if that cannot be read. A server runs one event loop per core by default.
public func usableCoreCount() -> Int {
    let usable = Int(small_db_usable_cpu_count())
    return max(1, usable > 0 ? usable : Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}
