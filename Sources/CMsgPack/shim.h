#ifndef NANA_CMSGPACK_SHIM_H
#define NANA_CMSGPACK_SHIM_H
#include <msgpack.h>
#endif
