// msgpack-c's decoder, instantiated from its public unpack template with a stack deep enough for
// the 254 nesting levels NanaSQLite files can hold (the library's own build stops at 32).
// The callbacks build msgpack_object trees in a msgpack_zone, as the library's decoder does.
#define MSGPACK_EMBED_STACK_SIZE NANA_MSGPACK_MAX_DEPTH
#include "CNanaMsgPack.h"
#include <msgpack/unpack_define.h>

typedef struct { msgpack_zone *zone; } nana_unpack_user;

#define msgpack_unpack_struct(name) struct nana_template##name
#define msgpack_unpack_func(ret, name) static ret nana_template##name
#define msgpack_unpack_callback(name) nana_callback##name
#define msgpack_unpack_object msgpack_object
#define msgpack_unpack_user nana_unpack_user

static inline msgpack_object nana_callback_root(nana_unpack_user *u) {
    (void)u; msgpack_object o; o.type = MSGPACK_OBJECT_NIL; return o;
}
static inline int set_unsigned(msgpack_object *o, uint64_t v) {
    o->type = MSGPACK_OBJECT_POSITIVE_INTEGER; o->via.u64 = v; return 0;
}
static inline int set_signed(msgpack_object *o, int64_t v) {
    if (v >= 0) return set_unsigned(o, (uint64_t)v);
    o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER; o->via.i64 = v; return 0;
}
static inline int nana_callback_uint8(nana_unpack_user *u, uint8_t d, msgpack_object *o) { (void)u; return set_unsigned(o, d); }
static inline int nana_callback_uint16(nana_unpack_user *u, uint16_t d, msgpack_object *o) { (void)u; return set_unsigned(o, d); }
static inline int nana_callback_uint32(nana_unpack_user *u, uint32_t d, msgpack_object *o) { (void)u; return set_unsigned(o, d); }
static inline int nana_callback_uint64(nana_unpack_user *u, uint64_t d, msgpack_object *o) { (void)u; return set_unsigned(o, d); }
static inline int nana_callback_int8(nana_unpack_user *u, int8_t d, msgpack_object *o) { (void)u; return set_signed(o, d); }
static inline int nana_callback_int16(nana_unpack_user *u, int16_t d, msgpack_object *o) { (void)u; return set_signed(o, d); }
static inline int nana_callback_int32(nana_unpack_user *u, int32_t d, msgpack_object *o) { (void)u; return set_signed(o, d); }
static inline int nana_callback_int64(nana_unpack_user *u, int64_t d, msgpack_object *o) { (void)u; return set_signed(o, d); }
static inline int nana_callback_float(nana_unpack_user *u, float d, msgpack_object *o) {
    (void)u; o->type = MSGPACK_OBJECT_FLOAT64; o->via.f64 = d; return 0;
}
static inline int nana_callback_double(nana_unpack_user *u, double d, msgpack_object *o) {
    (void)u; o->type = MSGPACK_OBJECT_FLOAT64; o->via.f64 = d; return 0;
}
static inline int nana_callback_nil(nana_unpack_user *u, msgpack_object *o) { (void)u; o->type = MSGPACK_OBJECT_NIL; return 0; }
static inline int nana_callback_true(nana_unpack_user *u, msgpack_object *o) {
    (void)u; o->type = MSGPACK_OBJECT_BOOLEAN; o->via.boolean = true; return 0;
}
static inline int nana_callback_false(nana_unpack_user *u, msgpack_object *o) {
    (void)u; o->type = MSGPACK_OBJECT_BOOLEAN; o->via.boolean = false; return 0;
}
static inline int nana_callback_array(nana_unpack_user *u, unsigned int n, msgpack_object *o) {
    o->type = MSGPACK_OBJECT_ARRAY;
    o->via.array.size = 0;
    o->via.array.ptr = n == 0 ? NULL : (msgpack_object *)msgpack_zone_malloc(u->zone, n * sizeof(msgpack_object));
    return (n != 0 && o->via.array.ptr == NULL) ? -1 : 0;
}
static inline int nana_callback_array_item(nana_unpack_user *u, msgpack_object *c, msgpack_object o) {
    (void)u; c->via.array.ptr[c->via.array.size++] = o; return 0;
}
static inline int nana_callback_map(nana_unpack_user *u, unsigned int n, msgpack_object *o) {
    o->type = MSGPACK_OBJECT_MAP;
    o->via.map.size = 0;
    o->via.map.ptr = n == 0 ? NULL : (msgpack_object_kv *)msgpack_zone_malloc(u->zone, n * sizeof(msgpack_object_kv));
    return (n != 0 && o->via.map.ptr == NULL) ? -1 : 0;
}
static inline int nana_callback_map_item(nana_unpack_user *u, msgpack_object *c, msgpack_object k, msgpack_object v) {
    (void)u;
    c->via.map.ptr[c->via.map.size].key = k;
    c->via.map.ptr[c->via.map.size].val = v;
    c->via.map.size++;
    return 0;
}
static inline int nana_callback_str(nana_unpack_user *u, const char *b, const char *p, unsigned int l, msgpack_object *o) {
    (void)u; (void)b; o->type = MSGPACK_OBJECT_STR; o->via.str.ptr = p; o->via.str.size = l; return 0;
}
static inline int nana_callback_bin(nana_unpack_user *u, const char *b, const char *p, unsigned int l, msgpack_object *o) {
    (void)u; (void)b; o->type = MSGPACK_OBJECT_BIN; o->via.bin.ptr = p; o->via.bin.size = l; return 0;
}
static inline int nana_callback_ext(nana_unpack_user *u, const char *b, const char *p, unsigned int l, msgpack_object *o) {
    (void)u; (void)b; (void)p; (void)l; (void)o; return -1; // the pre-check refuses ext; never reached
}

#include <msgpack/unpack_template.h>

int nana_msgpack_unpack(const char *data, size_t len, msgpack_zone *zone, msgpack_object *out) {
    struct nana_template_context ctx;
    nana_template_init(&ctx);
    ctx.user.zone = zone;
    size_t off = 0;
    int e = nana_template_execute(&ctx, data, len, &off);
    if (e <= 0) return e;
    if (off != len) return -2;
    *out = nana_template_data(&ctx);
    return 1;
}
