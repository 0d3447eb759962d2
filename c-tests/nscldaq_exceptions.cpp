// NSCLDAQ's exception classes used the way legacy code uses them: catching by value and
// by base class, copying and assigning, comparing, and deriving its own exceptions from
// them with the protected members NSCLDAQ's headers give derived classes.
#include <CPortManagerException.h>
#include <ErrnoException.h>
#include <Exception.h>
#include <RangeError.h>
#include <StateException.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>
#include <sstream>
#include <string>

#include "nscldaq_check.h"

// An allocator that changes errno even when it succeeds (as any allocator may): the
// errno a CErrnoException keeps must be the one from before it copied its action.
static bool clobberErrno = false;

void* operator new(size_t size)
{
    void* p = malloc(size ? size : 1);
    if (!p) throw std::bad_alloc();
    if (clobberErrno) errno = EILSEQ;
    return p;
}
void operator delete(void* p) noexcept { free(p); }
void operator delete(void* p, size_t) noexcept { free(p); }

namespace {

// A legacy program's own errno exception: it fixes the errno after construction.
class CPipeBroken : public CErrnoException
{
public:
    explicit CPipeBroken(const char* doing) : CErrnoException(doing) { setErrno(EPIPE); }
};

// A legacy program's own exception that renames its action, as NSCLDAQ code does.
class CReadoutFailed : public CException
{
public:
    explicit CReadoutFailed(const std::string& doing) : CException("") { setAction("readout: " + doing); }
    virtual const char* ReasonText() const { return "readout failed"; }
    virtual int ReasonCode() const { return 42; }
};

class CWindow : public CRangeError
{
public:
    CWindow() : CRangeError(0, 10, 5, "window") { setRequested(11); }
};

void errnoExceptions()
{
    errno = ENOENT;
    CErrnoException e("opening the ring");
    CHECK(e.ReasonCode() == ENOENT && e.getErrno() == ENOENT);
    CHECK(std::string(e.ReasonText()) == strerror(ENOENT));
    CHECK(std::string(e.WasDoing()) == "opening the ring" && std::string(e.getAction()) == "opening the ring");

    const std::string longAction(200, 'x');  // too long to be stored without allocating
    clobberErrno = true;
    errno = ENOENT;
    CErrnoException kept(longAction.c_str());
    errno = ENOENT;
    CErrnoException keptToo(longAction);
    clobberErrno = false;
    CHECK(kept.ReasonCode() == ENOENT && keptToo.ReasonCode() == ENOENT);

    errno = 0;
    CPipeBroken broken("writing");
    CHECK(broken.ReasonCode() == EPIPE && broken.getErrno() == EPIPE);
    CHECK(std::string(broken.ReasonText()) == strerror(EPIPE));

    CErrnoException copy(e);
    CHECK(copy == e && !(copy != e));
    errno = EACCES;
    CErrnoException other(std::string("attaching"));
    CHECK(other != e);
    other = e;
    CHECK(other == e && other.ReasonCode() == ENOENT && std::string(other.ReasonText()) == strerror(ENOENT));

    try {
        throw broken;
    } catch (CException& base) {
        CHECK(base.ReasonCode() == EPIPE && std::string(base.WasDoing()) == "writing");
    }
}

void baseAndDerived()
{
    char action[kACTIONSIZE];  // NSCLDAQ's Exception.h defines the size of its action text
    CHECK(sizeof action >= 1024);

    try {
        throw CReadoutFailed("VME crate 2");
    } catch (CException& e) {
        CHECK(std::string(e.WasDoing()) == "readout: VME crate 2");
        CHECK(std::string(e.ReasonText()) == "readout failed" && e.ReasonCode() == 42);
        // Catching by value slices to the base class, as it always did.
        CException sliced(e);
        CHECK(std::string(sliced.WasDoing()) == "readout: VME crate 2" && sliced.ReasonCode() == -1);
        CException assigned("nothing");
        assigned = e;
        CHECK(assigned == sliced);
    }

    CWindow window;
    CHECK(window.getRequested() == 11 && window.ReasonCode() == CRangeError::knTooHigh);
    CHECK(strstr(window.ReasonText(), "11") != 0);
    CRangeError low(5, 10, 2, std::string("low"));
    CHECK(low.ReasonCode() == CRangeError::knTooLow);
    CRangeError lowCopy(low);
    CHECK(lowCopy == low && lowCopy != CRangeError(5, 10, 3, "low"));

    CStateException state("idle", "active", "starting a run");
    CStateException stateCopy(state);
    CHECK(stateCopy == state && state.ReasonCode() == -1);
    CHECK(strstr(state.ReasonText(), "idle") && strstr(state.ReasonText(), "active"));

    CPortManagerException pm("daq1", CPortManagerException::NotLocal, "allocating");
    std::ostringstream text;
    text << pm;
    CHECK(text.str() == std::string(pm.ReasonText()) + " : allocating");
    CPortManagerException pmCopy("x", CPortManagerException::NoPorts, "y");
    pmCopy = pm;
    CHECK(pmCopy == pm && pmCopy.ReasonCode() == CPortManagerException::NotLocal);
}

}  // namespace

int main()
{
    errnoExceptions();
    baseAndDerived();
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
