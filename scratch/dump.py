import struct,sys
def read_ex(path):
    b=open(path,'rb').read(); h=struct.unpack('<256i',b[:1024]); N,K=h[2],h[3]; pos=1024; out=[]
    for i in range(N):
        L=struct.unpack('<%dH'%(1+K),b[pos:pos+2*(1+K)]); pos+=2*(1+K)
        toks=struct.unpack('<%dH'%sum(L),b[pos:pos+2*sum(L)]); pos+=2*sum(L)
        parts=[];o=0
        for l in L: parts.append(bytes(t for t in toks[o:o+l] if t).decode()); o+=l
        out.append(parts)
    return out
def read_tok(path):
    b=open(path,'rb').read(); h=struct.unpack('<256i',b[:1024]); n=h[2]
    return struct.unpack('<%dH'%n,b[1024:1024+2*n])
if __name__=='__main__':
    p=sys.argv[1]; n=int(sys.argv[2]) if len(sys.argv)>2 else 8
    if 'pretrain' in p:
        t=read_tok(p); print(bytes(x if x else 0x7c for x in t[:n]).decode())
    else:
        for e in read_ex(p)[:n]: print(repr(e))
