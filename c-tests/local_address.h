// A local IPv4 address that is not loopback, for the C++ test programs that must reach a
// daemon as "another host" (the port manager refuses allocations from there; a ring master
// reached there is not local by NSCLDAQ's rule). Empty when the host has none.
#ifndef DAQFLOW_C_TESTS_LOCAL_ADDRESS_H
#define DAQFLOW_C_TESTS_LOCAL_ADDRESS_H

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>

#include <string>

inline std::string nonLoopbackAddress()
{
    struct ifaddrs* all = 0;
    std::string found;
    if (getifaddrs(&all) != 0) return found;
    for (struct ifaddrs* a = all; a && found.empty(); a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
        char text[INET_ADDRSTRLEN];
        const struct sockaddr_in* in = reinterpret_cast<const struct sockaddr_in*>(a->ifa_addr);
        if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) && strncmp(text, "127.", 4) != 0) found = text;
    }
    freeifaddrs(all);
    return found;
}

#endif
