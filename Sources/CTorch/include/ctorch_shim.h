/* libMediscopeTorch.so exports one symbol, ctorch_api_get; its table and
 * every type it uses are declared in CTorchLoader's ctorch.h, which the
 * shim and its callers share. */
#ifndef CTORCH_SHIM_H
#define CTORCH_SHIM_H
#include "ctorch.h"
#endif
