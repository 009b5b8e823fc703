// A throw-away CA made by openssl at test time: the maker lives in scripts/pki.ts, which the demo
// (`npm run demo -- --tls`) shares; tests keep importing it from here.
export { makePki, privateCopy, type Leaf, type Pki } from '../../scripts/pki.ts';
