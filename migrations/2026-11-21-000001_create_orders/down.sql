DROP TABLE dead_letters;
DROP TABLE items;
DROP TABLE payments;
DROP TABLE deliveries;
DROP TABLE orders;
