// What other.cpp offers main.cpp.
#ifndef NSCLDAQ_TWO_UNITS_H
#define NSCLDAQ_TWO_UNITS_H

#include <stddef.h>

#include <string>

size_t otherDefaultRingSize();
size_t otherDefaultMaxConsumers();
void setOtherDefaults(size_t bytes, size_t consumers);
void setOtherRemoteSettings(size_t minData, unsigned timeout);
void createWithDefaults(const std::string& ring);
void attachMissing(const std::string& ring);
void putAsConsumer(const std::string& ring);
void throwPortManagerException();

#endif
