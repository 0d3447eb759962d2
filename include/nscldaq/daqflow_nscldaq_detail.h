// Helpers shared by daqflow's NSCLDAQ compatibility headers (not part of NSCLDAQ's
// interface).
#ifndef DAQFLOW_NSCLDAQ_DETAIL_H
#define DAQFLOW_NSCLDAQ_DETAIL_H

#include <errno.h>
#include <pwd.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace daqflow_nscldaq {

// The login name of user `uid`, or the decimal uid when it has no passwd entry.
inline std::string user_name(uid_t uid)
{
    struct passwd entry;
    struct passwd* found = 0;
    std::vector<char> storage(4096);
    while (getpwuid_r(uid, &entry, storage.data(), storage.size(), &found) == ERANGE && storage.size() < (1u << 20))
        storage.resize(storage.size() * 2);
    return found ? std::string(found->pw_name) : std::to_string(uid);
}

}  // namespace daqflow_nscldaq

#endif
